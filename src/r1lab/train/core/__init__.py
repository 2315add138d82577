"""The training loop every stage shares and what it owns: config, optimizer, schedule, checkpoints (with RNG and
data position), metrics, health alarms, model building and LoRA."""
