"""Voiceline's shared domain code: settings, tables, stream tokens and Twilio signatures."""
