"""The method, free of run folders: activations, crosscoders, latent statistics, edge attribution, latent edits,
bootstrap intervals. Every function here takes tensors or arrays and is unit-tested on hand-made inputs."""
