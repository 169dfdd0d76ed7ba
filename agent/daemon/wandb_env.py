"""What a run's environment holds so that an unmodified W&B script's ``wandb.init()`` joins the run.

This is what W&B's own agent arranges before it starts a run (``wandb/wandb_agent.py``,
``Agent._command_run``): the run's parameters are written as a W&B config file (``wandb_version: 1``,
then ``name: {value: ...}`` for each top-level parameter, nested ones as nested mappings) and named
by ``WANDB_SWEEP_PARAM_PATH``; ``wandb.init`` reads that file (``wandb_setup``'s ``config``) and applies
it over ``wandb.init(config=...)`` and ``config-defaults.yaml`` with ``allow_val_change``, so the
sweep's values win, with the types YAML gives them, before the script's own code reads
``wandb.config``. ``WANDB_RUN_ID`` (the sweepd run id) and ``WANDB_RESUME=allow`` make every attempt
log into one W&B run; ``WANDB_DIR`` is set to the agent's directory when the user set none, as W&B's
agent does, so the run's transaction log is where the agent looks for it (``wandb_follow.py``).

Unlike W&B's agent, ``WANDB_SWEEP_ID`` is never set: an online script would tell its W&B server the run
belongs to a sweep that server has never heard of. Nothing here reaches a W&B server, and an online
script's own settings (mode, project, entity, keys) are left as they are.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import yaml

#: The file W&B's config loader reads the run's parameters from, and its variable.
PARAM_PATH_ENV = "WANDB_SWEEP_PARAM_PATH"
PARAM_FILE = "wandb-config.yaml"
#: wandb writes its transaction log every 15 s by default: too late for hyperband. The user's own
#: value (in the environment, or ``wandb.init(settings=...)``, which wins over it) is kept.
FLUSH_ENV = "WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL"
FLUSH_SECONDS = "1"
#: libyaml's dumper where PyYAML has it (the same text, a quarter of the time of every run's start).
_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def config_text(params: Mapping[str, Any]) -> str:
    """The run's parameters as W&B's agent writes them (``config_util.save_config_file_from_dict``)."""
    text = "wandb_version: 1"
    if params:  # W&B: an empty mapping here is a parse error
        body = {name: {"value": value} for name, value in params.items()}
        text += "\n\n" + yaml.dump(body, Dumper=_DUMPER, default_flow_style=False, allow_unicode=True, sort_keys=False)
    return text


def wandb_dir(environ: Mapping[str, str]) -> str:
    """Where wandb puts the run's directory (under its ``wandb/``): ``WANDB_DIR``, else here."""
    return environ.get("WANDB_DIR") or os.getcwd()


def environment(run_id: str, params: Mapping[str, Any], workdir: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables to add to the run's environment; writes the params file into ``workdir``."""
    path = os.path.join(workdir, PARAM_FILE)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(config_text(params))
    env = {
        PARAM_PATH_ENV: path,
        "WANDB_RUN_ID": run_id,
        "WANDB_RESUME": "allow",
        "WANDB_DIR": wandb_dir(environ),
    }
    if FLUSH_ENV not in environ:
        env[FLUSH_ENV] = FLUSH_SECONDS
    return env
