"""Recipes: small glue that strings existing stages together for one model family (no new training code)."""
