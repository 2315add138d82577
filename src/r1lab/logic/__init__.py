"""Formal proofs over integers and booleans: the formula syntax, its parser, and the step-by-step Z3 checker.

A layer of its own below `data` (the `proof` task writes problems and worked proofs in this syntax) and
`rewards` (the `proof` and `proof_steps` rewards check them). docs/PROOFS.md describes the syntax and the rule.
"""

from r1lab.logic.checker import CheckLimits, LineVerdict, ProofCheck, check_proof, parse_proof
from r1lab.logic.syntax import Formula, FormulaError, parse_formula

__all__ = ["CheckLimits", "Formula", "FormulaError", "LineVerdict", "ProofCheck", "check_proof", "parse_formula",
           "parse_proof"]
