"""Experiments and figures of mixscale: one module per paper figure, table and theory ablation
(see ``experiments/_common.py`` for the conventions; ``python -m experiments.reproduce`` runs
them all)."""
