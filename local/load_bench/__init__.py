"""The load benchmark: many concurrent calls through a real bridge process, timed by stamps in the audio."""
