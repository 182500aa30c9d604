"""Architectures: how backbone(s) and heads form one multi-task model."""
