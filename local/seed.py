"""Demo data for the local stack: one tenant, one agent, one number. Safe to run twice."""

from __future__ import annotations

DEMO_TENANT = "tenant-demo"
DEMO_AGENT = "agent-demo"
DEMO_NUMBER = "+15550100"

DEMO_INSTRUCTIONS = (
    "You are Ava, the phone assistant for {business_name}, a plumbing company. "
    "Today is {local_date} and the local time is {local_time} ({timezone}). "
    "The caller is calling from {caller_number}. Speak briefly and warmly, one question at a time. "
    "If you do not know something, offer to take a message."
)


def seed() -> None:
    # Imported here: the models read table names from the environment, which the stack sets for us.
    from local.dynamo import create_tables
    from voiceline.models import Agent, PhoneNumber

    create_tables()
    Agent(DEMO_AGENT, tenant_id=DEMO_TENANT, name="Ava", business_name="Bright Plumbing",
          language="en", timezone="America/New_York", instructions=DEMO_INSTRUCTIONS,
          greeting="Thanks for calling {business_name}, this is Ava. How can I help?",
          voice="marin", speed=1.0, model="gpt-realtime",
          turn_detection={"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                          "silence_duration_ms": 500},
          noise_reduction="near_field", max_duration_s=300, silence_timeout_s=20).save()
    PhoneNumber(DEMO_NUMBER, agent_id=DEMO_AGENT, tenant_id=DEMO_TENANT).save()


if __name__ == "__main__":
    seed()
    print(f"seeded {DEMO_TENANT}: agent {DEMO_AGENT} answers {DEMO_NUMBER}")
