"""Models: load any local Hugging Face causal LM or build the organism; generate; pretrain; post-train with trl."""
