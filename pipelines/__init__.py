"""Runnable pipeline definitions: which ldct_tf steps run in which order, and config presets."""
