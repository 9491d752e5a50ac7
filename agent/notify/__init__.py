"""What the agent sends out to people and systems beyond its endpoint: mail (mail.py), the chain's
checkpoints to witnesses (witness.py)."""
