"""The reporting layer: tables, plots and leaderboards built from result JSONs alone (never from model code)."""
