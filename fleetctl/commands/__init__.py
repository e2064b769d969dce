"""fleetctl's verbs, one small module each; `base` holds what they share."""
