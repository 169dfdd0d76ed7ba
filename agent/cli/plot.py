"""``sweepd plot``: a sweep's metric over runs and its parameters against the metric, as a picture.

matplotlib is the ``plot`` extra: it is imported only when this command runs, so the rest of sweepd
works without it, and its absence is one line telling the user what to install.
"""

from __future__ import annotations

from pathlib import Path

import click

from sweepd.queue.errors import UserError

from .kit import redis_option, store_for

INSTALL_HINT = 'sweepd plot needs matplotlib: pip install "sweepd[plot]"'


@click.command("plot")
@click.argument("sweep_id")
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The picture to write; its suffix picks the format (.png, .svg, .pdf).",
)
@click.option("--dpi", type=click.IntRange(min=20, max=1200), default=110, show_default=True, help="Resolution.")
@redis_option
def command(sweep_id: str, output: Path, dpi: int, redis_url: str | None) -> None:
    """A picture of SWEEP_ID: is the search still improving, and which parameters matter.

    Two panels: (a) the sweep's metric per run in creation order (failed runs marked) with the
    best-so-far line for its goal; (b) parallel coordinates, one axis per searched parameter plus
    the metric, a line per run coloured by its metric (log-distributed parameters on log axes,
    categorical ones evenly spaced). The sweep needs a metric that at least one run reported;
    otherwise nothing is written.

    \b
    Examples:
      sweepd plot abc123de -o sweep.png
      sweepd plot abc123de --output sweep.svg
    """
    try:
        from .parts import figure
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "matplotlib":
            raise
        raise UserError(INSTALL_HINT) from None
    store = store_for(redis_url)
    record, config = store.sweep(sweep_id), store.config(sweep_id)
    fig = figure.figure(config, store.runs(sweep_id), sweep_id=sweep_id, name=record.name)
    try:
        fig.savefig(output, dpi=dpi)
    except ValueError as exc:  # matplotlib's word for a format it does not know
        raise UserError(f"cannot write {output}: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {output}", err=True)
