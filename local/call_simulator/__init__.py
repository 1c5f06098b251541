"""The call simulator: behaves like Twilio and a caller's phone for one inbound call.

It posts the signed voice webhook, follows the TwiML, streams a scripted caller over a media
stream in real time, plays the agent's audio on a phone-like clock, echoes marks, obeys clears,
records both legs to a WAV and sends the status callback.
"""

from local.call_simulator.call import place_call
from local.call_simulator.config import CallConfig
from local.call_simulator.report import AgentReply, CallReport, TurnReport

__all__ = ["AgentReply", "CallConfig", "CallReport", "TurnReport", "place_call"]
