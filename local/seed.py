"""Demo data for the local stack: Bright Plumbing's agent, number, services, diary, customer and articles.

Safe to run twice: every write is a put of the same item, and the customer's past booking is
booked only once.
"""

from __future__ import annotations

from datetime import UTC, datetime

DEMO_TENANT = "tenant-demo"
DEMO_AGENT = "agent-demo"
DEMO_NUMBER = "+15550100"
DEMO_CUSTOMER_NUMBER = "+15551234567"
DEMO_TRANSFER_NUMBER = "+15550199"  # the office line transfer_call dials
DEMO_TIMEZONE = "America/New_York"
DEMO_TOOLS = ("lookup_customer", "get_pricing", "check_service_area", "check_availability", "book_appointment",
              "cancel_appointment", "search_knowledge", "take_message", "transfer_call", "end_call")

DEMO_INSTRUCTIONS = (
    "You are Ava, the phone assistant for {business_name}, a plumbing company. "
    "Today is {local_date} and the local time is {local_time} ({timezone}). "
    "The caller is calling from {caller_number}. Their name on file (blank if new): {customer_name}. "
    "Speak briefly and warmly, one question at a time. "
    "Use your tools for prices, the service area, free slots, bookings and questions about the business; "
    "never guess them. If you do not know something, offer to take a message."
)

# The structured fields Bright Plumbing wants from each call's post-call summary.
DEMO_SUMMARY_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["customer_name", "service", "slot_start", "confirmation_code"],
    "properties": {name: {"type": ["string", "null"]}
                   for name in ("customer_name", "service", "slot_start", "confirmation_code")},
}

DEMO_ARTICLES = {
    "opening-hours": ("Opening hours",
                      "Our office and engineers work Monday to Friday, 8am to 5pm Eastern time. We are closed on "
                      "weekends and public holidays, when only emergency call-outs are available."),
    "guarantee": ("Our guarantee",
                  "Every repair is guaranteed for 12 months, parts and labour. If the same fault comes back within "
                  "a year we return and fix it free of charge."),
    "payment-methods": ("Payment methods",
                        "You can pay by credit or debit card, Apple Pay, bank transfer or cash. Payment is taken "
                        "when the job is finished; we never ask for a deposit on standard jobs."),
    "emergency-call-outs": ("Emergency call-outs",
                            "For burst pipes, floods and gas smells we offer emergency call-outs around the clock, "
                            "seven days a week, usually within two hours. Emergency visits cost a $150 call-out fee "
                            "plus parts and labour."),
}


def seed() -> None:
    # Imported here: the models read table names from the environment, which the stack sets for us.
    from local.dynamo import create_tables
    from voiceline import booking, catalog, customers, knowledge, tenant_data
    from voiceline.catalog import Service
    from voiceline.models import Agent, PhoneNumber
    from voiceline.tool_contract import ToolError

    create_tables()
    Agent(DEMO_AGENT, tenant_id=DEMO_TENANT, name="Ava", business_name="Bright Plumbing",
          language="en", timezone=DEMO_TIMEZONE, instructions=DEMO_INSTRUCTIONS,
          greeting="Thanks for calling {business_name}, this is Ava. How can I help?",
          voice="marin", speed=1.0, model="gpt-realtime",
          turn_detection={"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                          "silence_duration_ms": 500},
          noise_reduction="near_field", tools=list(DEMO_TOOLS), transfer_number=DEMO_TRANSFER_NUMBER,
          max_duration_s=300, silence_timeout_s=20, summary_schema=DEMO_SUMMARY_SCHEMA).save()
    PhoneNumber(DEMO_NUMBER, agent_id=DEMO_AGENT, tenant_id=DEMO_TENANT).save()

    tenant_data.put_business_settings(DEMO_TENANT, tenant_data.BusinessSettings(
        timezone=DEMO_TIMEZONE, slot_minutes=60, min_notice_minutes=60))
    for weekday in ("mon", "tue", "wed", "thu", "fri"):
        booking.put_opening_hours(DEMO_TENANT, weekday, "08:00", "17:00")
    booking.put_resource(DEMO_TENANT, "van-1", "Van 1")
    for service in (
        Service("tap-repair", "Tap repair", price=95.0, notes="Includes washers and cartridges for standard taps.",
                aliases=("leaking tap", "dripping tap", "faucet repair")),
        Service("boiler-service", "Boiler service", price=149.0,
                notes="Annual service with a safety check and a written report.",
                aliases=("boiler servicing", "annual boiler check", "furnace service")),
        Service("drain-unblocking", "Drain unblocking", price_from=110.0, price_to=250.0,
                notes="The price depends on how deep the blockage is; a camera survey is $90 extra if needed.",
                aliases=("blocked drain", "clogged drain", "drain cleaning")),
    ):
        catalog.put_service(DEMO_TENANT, service)
    catalog.put_service_area(DEMO_TENANT, postcodes={"10001": "Chelsea, Manhattan", "10011": "Chelsea, Manhattan",
                                                     "11201": "Brooklyn Heights", "11211": "Williamsburg",
                                                     "07302": "Jersey City"},
                             cities=["New York", "Manhattan", "Brooklyn", "Jersey City", "Hoboken"])
    customers.put_customer(DEMO_TENANT, DEMO_CUSTOMER_NUMBER, customers.Customer(
        "Jordan Lee", notes="Combi boiler in the basement; prefers morning visits."))
    try:
        booking.book(DEMO_TENANT, "boiler service", "2025-11-04T09:00", "Jordan Lee", DEMO_CUSTOMER_NUMBER,
                     notes="Annual service.", now=datetime(2025, 10, 1, tzinfo=UTC))
    except ToolError as error:
        if error.type != "slot_taken":
            raise  # slot_taken means seeded before: the slot holds Jordan's booking already
    for article_id, (title, body) in DEMO_ARTICLES.items():
        knowledge.put_article(DEMO_TENANT, article_id, title, body)


if __name__ == "__main__":
    seed()
    print(f"seeded {DEMO_TENANT}: agent {DEMO_AGENT} answers {DEMO_NUMBER}")
