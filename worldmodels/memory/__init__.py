"""Memory: the MDN-RNN that predicts the next latent z from the current z, action and history."""
