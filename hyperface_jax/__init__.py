"""hyperface_jax: deep multi-task face analysis in JAX/Flax."""
