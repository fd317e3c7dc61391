"""mapping: whole-model scheduling onto a generated accelerator or a GPU (to come)."""
