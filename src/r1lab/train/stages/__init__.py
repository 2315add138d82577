"""Language-model stages on the shared loop: pretraining, supervised fine-tuning and distillation."""
