"""Rejection sampling: sample from a model, keep what the verifier accepts, write SFT data with provenance.
It trains nothing, so it sits beside `r1lab.train`, not inside it."""
