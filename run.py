"""Entry point: `python run.py [-m] key=value ...`. Hydra composes conf/; `reslab.train.train` does the work.

    python run.py -m depth=20,56,110 model=plain,residual
"""

import sys
from pathlib import Path

import hydra

from reslab.cli import JobRunner, register_resolvers
from reslab.errors import UserError
from reslab.preflight import preflight

register_resolvers()
runner = JobRunner()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    return runner(cfg)


if __name__ == "__main__":
    try:
        preflight(sys.argv[1:], Path(__file__).resolve().parent / "conf")
    except UserError as e:
        print(f"reslab: error: {e}", file=sys.stderr)
        sys.exit(2)
    main()
    sys.exit(runner.exit_code)
