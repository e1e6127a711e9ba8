"""The ``lossland <command>`` implementations that sit above the studies (one module per command)."""
