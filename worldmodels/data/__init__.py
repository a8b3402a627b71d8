"""Stage 1 and 3: the environment, episode records and sampling commands."""
