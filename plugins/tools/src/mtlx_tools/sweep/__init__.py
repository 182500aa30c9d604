"""``mtlx sweep``: a grid of ``mtlx run`` cells (strategies x settings x seeds), validated, resumable, in one directory.

- :mod:`.spec`: the spec (TOML file and/or flags) -> base settings, grid axes, explicit settings;
- :mod:`.cells`: the spec expanded into cells, each resolved and validated as ``mtlx run`` would;
- :mod:`.manifest`: the sweep directory (``manifest.json``, ``runs/KEY``, ``logs/KEY.log``) and its checks;
- :mod:`.executor`, :mod:`.local`, ``slurm``: what launches the cells' jobs;
- :mod:`.cell`: one cell's job (``python -m mtlx_tools.sweep.cell SWEEP_DIR KEY``);
- :mod:`.command`: the click command.
"""
