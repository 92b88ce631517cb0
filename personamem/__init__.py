"""personamem: learn who a user is from long chat histories and personalize answers."""
