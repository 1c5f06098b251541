"""A scripted stand-in for the OpenAI Realtime API (GA protocol), for running Voiceline with no account."""

from local.scripted_model.conversation import Script, load_script
from local.scripted_model.server import ScriptedModelServer, serve

__all__ = ["Script", "ScriptedModelServer", "load_script", "serve"]
