"""mtlx-archs: backbones, task heads and multi-task architectures for mtlx."""
