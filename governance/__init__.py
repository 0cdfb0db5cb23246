"""Co-governance (共治): deliberation topics by the five-step method (五步议事) and the community ledgers."""
