"""Model-making tools: the demo model's training, SavedModel export, and the h5 -> SavedModel
converter, all publishing into a TF Serving model repository through one atomic writer."""
