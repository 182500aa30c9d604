"""``mtlx profile``: measure (parameters, FLOPs, memory) and timing (the engine's steps), printed by output."""
