"""The bridge: holds each call's Twilio media stream and its OpenAI Realtime session."""
