"""`tad serve` and `tad replay` (registered in `tad.cli`).

Heavy imports (uvicorn, the app, datasets) happen inside the commands, so `tad --help` stays
quick. Options override the `TAD_*` environment; a bad setting exits with its variable named.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer


def serve(
    host: Annotated[str | None, typer.Option(help="bind address [TAD_HOST, 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port [TAD_PORT, 8000]")] = None,
    model_dir: Annotated[
        Path | None, typer.Option("--model-dir", help="bundle directory [TAD_MODEL_DIR, models]")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", help="keep state in Redis [TAD_REDIS_URL]")
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="an empty model dir gets a copy of the committed demo bundle (no training)",
        ),
    ] = False,
    log_level: Annotated[str | None, typer.Option(help="[TAD_LOG_LEVEL, info]")] = None,
) -> None:
    """Run the streaming service (FastAPI on uvicorn)."""
    import uvicorn

    from service.app import create_app
    from service.settings import SettingsError, load_settings

    overrides: dict[str, Any] = {
        k: v
        for k, v in (
            ("host", host),
            ("port", port),
            ("model_dir", model_dir),
            ("redis_url", redis_url),
            ("log_level", log_level),
        )
        if v is not None
    }
    logging.basicConfig(
        level=(log_level or os.environ.get("TAD_LOG_LEVEL", "info")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if demo:
        from service.demo import ensure_demo_bundle

        target = Path(model_dir or os.environ.get("TAD_MODEL_DIR") or "models")
        try:
            if ensure_demo_bundle(target) is not None:
                typer.echo(f"the demo bundle is in {target}")
        except RuntimeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws=settings.ws_impl,
        ws_max_size=settings.max_ws_message_bytes,
        timeout_graceful_shutdown=5,
    )


def replay(
    url: Annotated[
        str | None, typer.Option(help="service base URL, e.g. ws://127.0.0.1:8000")
    ] = None,
    stream: Annotated[
        str | None,
        typer.Option(help="stream id (default: a new one, named after the data and the time)"),
    ] = None,
    csv: Annotated[
        Path | None,
        typer.Option(help="CSV read as tad train --kind table reads it (time, label, channels)"),
    ] = None,
    timestamp_column: Annotated[
        str, typer.Option(help="--csv: time column ('auto': by name; 'none')")
    ] = "auto",
    label_column: Annotated[
        str,
        typer.Option(
            help="--csv: label column(s), comma-separated, never sent ('auto': every column "
            "named like a label; 'none')"
        ),
    ] = "auto",
    channels: Annotated[
        str | None, typer.Option(help="--csv: comma-separated channel columns")
    ] = None,
    drop_channels: Annotated[
        str | None, typer.Option(help="--csv: comma-separated columns not to send")
    ] = None,
    sep: Annotated[
        str | None, typer.Option(help="--csv: separator (default: sniffed among , ; tab |)")
    ] = None,
    smd_root: Annotated[Path | None, typer.Option(help="SMD dataset root")] = None,
    entity: Annotated[str | None, typer.Option(help="SMD machine, e.g. machine-1-1")] = None,
    demo: Annotated[bool, typer.Option(help="replay generated demo data with a fault")] = False,
    rate: Annotated[float, typer.Option(help="points per second; 0 = as fast as answered")] = 0,
    batch: Annotated[int, typer.Option(min=1, help="points per message")] = 1,
    limit: Annotated[int | None, typer.Option(help="send at most this many points")] = None,
    model: Annotated[str | None, typer.Option(help="model for a new stream")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="TAD_API_KEY", help="X-API-Key")] = None,
    mqtt: Annotated[
        str | None,
        typer.Option(
            help="publish to this broker (mqtt://host[:port]) as a gateway would; --url is then "
            "only asked which channels the stream's model has (a CSV's other columns not sent)"
        ),
    ] = None,
    topic: Annotated[
        str, typer.Option(help="--mqtt: topic of the readings ({stream_id}: the stream)")
    ] = "tad/readings/{stream_id}",
    alarm_topic: Annotated[
        str, typer.Option(help="--mqtt: topic the service publishes alarms on ('none': off)")
    ] = "tad/alarms/{stream_id}",
    mqtt_username: Annotated[str | None, typer.Option(envvar="TAD_MQTT_USERNAME")] = None,
    mqtt_password: Annotated[str | None, typer.Option(envvar="TAD_MQTT_PASSWORD")] = None,
) -> None:
    """Stream a CSV, an SMD machine's test data or the demo data into a running service over
    WebSocket (--url) or through an MQTT broker as a gateway would (--mqtt), printing alarms as
    they open and close."""
    from service.replay import ReplayData, fit_to_model, model_channels, read_csv
    from service.replay import replay as run

    if url is None and mqtt is None:
        raise typer.BadParameter("give --url, or --mqtt (with --url to fit a CSV to the model)")
    sources = sum(x for x in (csv is not None, smd_root is not None, demo))
    if sources != 1:
        raise typer.BadParameter("give exactly one of --csv, --smd-root (with --entity), --demo")
    if csv is not None:
        try:
            data = read_csv(
                csv,
                None if timestamp_column.lower() == "none" else timestamp_column,
                None if label_column.lower() == "none" else label_column,
                [c.strip() for c in channels.split(",")] if channels else None,
                [c.strip() for c in drop_channels.split(",")] if drop_channels else (),
                "\t" if sep in ("\\t", "tab") else sep,
            )
        except (OSError, ValueError) as exc:
            typer.echo(f"error: --csv: {exc}", err=True)
            raise typer.Exit(2) from exc
    elif smd_root is not None:
        if entity is None:
            raise typer.BadParameter("--smd-root needs --entity")
        import numpy as np

        from model_training.data.smd import load_smd

        (ent,) = load_smd(smd_root, [entity])
        data = ReplayData(ent.channel_names, np.asarray(ent.test, dtype=np.float64), None)
    else:
        from service.demo import DEMO_CHANNELS, demo_series

        data = ReplayData(
            DEMO_CHANNELS, demo_series(1000, seed=7, anomaly=(600, 660), start=4000), None
        )
    if stream is None:
        import datetime as dt

        source = csv.stem if csv is not None else (entity or "demo")
        stream = f"{source}-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}"
        typer.echo(f"stream {stream}")
    if csv is not None and not channels and url is not None:  # the model's channels decide
        target = model_channels(url, stream, model, api_key)
        if target is not None:
            try:
                data, note = fit_to_model(data, *target)
            except ValueError as exc:
                typer.echo(f"error: --csv: {exc}", err=True)
                raise typer.Exit(2) from exc
            if note:
                typer.echo(f"note: {note}", err=True)
    if limit is not None:
        data = ReplayData(
            data.names,
            data.values[:limit],
            None if data.timestamps is None else data.timestamps[:limit],
        )
    try:
        if mqtt is not None:
            from service.mqtt.gateway import replay_mqtt

            s = replay_mqtt(
                mqtt,
                topic.format(stream_id=stream),
                None if alarm_topic.lower() == "none" else alarm_topic.format(stream_id=stream),
                data,
                rate=rate,
                batch=batch,
                username=mqtt_username,
                password=mqtt_password,
                echo=typer.echo,
            )
        else:
            s = run(
                str(url),
                stream,
                data,
                rate=rate,
                batch=batch,
                model=model,
                api_key=api_key,
                echo=typer.echo,
            )
    except RuntimeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    opened = sum(e["kind"] == "opened" for e in s.events)
    if mqtt is not None:
        typer.echo(f"done: {s.sent} points published, {opened} alarms opened (published back)")
        return
    typer.echo(
        f"done: {s.sent} points sent, {s.accepted} accepted, {s.duplicates} duplicates, "
        f"{opened} alarms opened, "
        f"{s.reconnects} reconnects"
    )


def main() -> None:
    """`python -m service.cli serve|replay`: the same commands without the training imports."""
    app = typer.Typer(no_args_is_help=True, add_completion=False)
    app.command("serve")(serve)
    app.command("replay")(replay)
    app()


if __name__ == "__main__":
    main()
