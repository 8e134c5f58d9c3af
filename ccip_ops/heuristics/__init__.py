"""VLASS numbers and formulas: imaging parameters, field selection, SEFD, position correction."""
