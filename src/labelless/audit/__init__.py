"""Security audits of encoders and unlabelled data (docs/security.md): label-free backdoor trigger
inversion, adversarial inputs on the embedding, adversarial-input detection, outliers in training
data, and poisoning triggers for experiments. Everything runs on torch, on the pixels the encoder
is fed (``audit.pixels.PixelEncoder``: its own resize and normalisation)."""
