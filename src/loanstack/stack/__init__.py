"""The stack's life: deploy through change sets (staged, preflighted, followed) and destroy."""
