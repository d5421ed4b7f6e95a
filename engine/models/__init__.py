"""Neural network modules: audio autoencoder, latent whitening, omnidirectional U-Net."""
