"""Files -> validated, frozen agent definitions. Never imports the LiveKit SDK, so `validate` starts fast."""
