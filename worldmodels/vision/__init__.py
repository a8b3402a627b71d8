"""Vision: the convolutional VAE that compresses each frame to a 32-dimensional latent z."""
