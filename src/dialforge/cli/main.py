"""The ``dialforge`` command line (commands listed in README.md): parse, call into the library, print."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from dialforge.config import DialforgeConfig
    from dialforge.llm.server_check import ServerCheck
    from dialforge.runner.progress import Reporter
    from dialforge.runner.run import RunOptions, RunSummary

app = typer.Typer(
    name="dialforge",
    help="Generate multi-turn, tool-use dialogue datasets for training LLM agents.",
    no_args_is_help=True,
    add_completion=False,
)
tools_app = typer.Typer(help="Build and check the SQL tools a domain offers.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")


class Executor(StrEnum):
    local = "local"
    ray = "ray"


class ExportFormat(StrEnum):
    openai = "openai"
    trl = "trl"
    sharegpt = "sharegpt"
    hermes = "hermes"


class Truncated(StrEnum):
    include = "include"
    exclude = "exclude"


class Reasoning(StrEnum):
    none = "none"
    field = "field"
    think = "think"


@app.command()
def run(
    context: typer.Context,
    config: Annotated[Path, typer.Argument(help="the run configuration (YAML)")],
    out: Annotated[Path | None, typer.Option("--out", help="run directory; running again resumes it")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="use the offline dry-run model, no server")] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="generate at most N dialogues")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", min=1, help="dialogues in flight")] = None,
    executor: Annotated[Executor, typer.Option("--executor", help="where dialogues run")] = Executor.local,
    force_new_config: Annotated[
        bool, typer.Option("--force-new-config", help="resume RUN_DIR even though the config changed")
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option("--retry-failed", help="run failed dialogues again from the start, replacing their records"),
    ] = False,
    skip_server_check: Annotated[
        bool, typer.Option("--skip-server-check", help="start without checking what the model servers can do")
    ] = False,
) -> None:
    """Generate (or resume) a dataset as the config describes, once the servers do what the roles need."""
    import importlib.util

    if executor is Executor.ray and importlib.util.find_spec("ray") is None:
        typer.echo("dialforge run --executor ray needs Ray: pip install 'dialforge[ray]'", err=True)
        raise typer.Exit(2)
    settings = _load_config(config, dry_run)
    run_dir = out or Path("runs") / config.stem
    options = _checked_run_options(
        context,
        settings,
        config,
        run_dir,
        check_servers=not skip_server_check,
        dry_run=dry_run,
        limit=limit,
        concurrency=concurrency,
        force_new_config=force_new_config,
        retry_failed=retry_failed,
    )
    if executor is Executor.ray:
        from dialforge.runner.ray_executor import RayExecutorError, run_on_ray

        try:
            _execute(
                lambda reporter: run_on_ray(
                    settings, run_dir, options, reporter, address=settings.ray.address, workers=settings.ray.workers
                ),
                context,
                run_dir,
            )
        except RayExecutorError as exc:
            typer.echo(f"{exc}; resume with: {_command_line(context, run_dir)}", err=True)
            raise typer.Exit(1) from None
        return
    from dialforge.runner.run import run as run_config

    _execute(lambda reporter: run_config(settings, run_dir, options, reporter), context, run_dir)


@app.command("check-server")
def check_server(
    config: Annotated[Path, typer.Argument(help="the run configuration (YAML)")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="seconds each probe may take")] = 60.0,
) -> None:
    """Probe each role's endpoint and model with a few tiny requests: what holds, and what each role needs; exit 1
    when a role needs what its server cannot do."""
    import orjson
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from dialforge.llm.server_check import CHECK_LABELS, CHECKS

    result = _server_check(_load_config(config, dry_run=False), timeout)
    if as_json:
        typer.echo(orjson.dumps(result.model_dump(mode="json") | {"ok": result.ok}).decode())
    else:
        console = Console()
        marks = {True: Text("yes", style="green"), False: Text("no", style="red"), None: Text("?", style="yellow")}
        for endpoint in result.endpoints:
            server = f" · served by {endpoint.server}" if endpoint.server else ""
            table = Table(
                "check",
                "holds",
                "detail",
                title=f"{endpoint.base_url} · {endpoint.model}{server}",
                title_justify="left",
            )
            for check in CHECKS:
                if (finding := endpoint.findings.get(check)) is not None:
                    table.add_row(CHECK_LABELS[check], marks[finding.holds], Text(finding.detail))
            console.print(table)
            console.print(Text(f"roles: {', '.join(endpoint.roles)}"))
        for line in result.problem_lines():
            console.print(Text(line, style="bold" if line.startswith("  fix:") else "red"))
        for note in result.notes:
            console.print(Text(f"note: {note}", style="yellow"))
        if result.ok:
            console.print(Text("every role's needs hold", style="green"))
    if not result.ok:
        raise typer.Exit(1)


def _server_check(settings: DialforgeConfig, timeout_s: float = 60.0) -> ServerCheck:
    """The check of every role's server, or exit 2 on a config error (such as an unset key variable)."""
    from dialforge.config import ConfigError
    from dialforge.llm.server_check import check_servers

    try:
        return asyncio.run(check_servers(settings.models, timeout_s=timeout_s))
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _checked_run_options(
    context: typer.Context,
    settings: DialforgeConfig,
    config: Path,
    run_dir: Path,
    *,
    check_servers: bool,
    dry_run: bool,
    **choices: Any,
) -> RunOptions:
    """The options of a run (``run``, ``extend``), once the servers are found fit for the roles (a dry run uses
    none; ``check_servers`` false skips the check)."""
    from dialforge.runner.run import RunOptions

    if not dry_run and check_servers:
        _refuse_unfit_servers(settings, config, _command_line(context, run_dir, "--skip-server-check"))
    return RunOptions(dry_run=dry_run, **choices)


def _refuse_unfit_servers(settings: DialforgeConfig, config: Path, anyway: str) -> None:
    """Exit 2 before anything is generated (or a run directory made) when a role needs what its server cannot
    do; ``anyway`` is the command that starts the run without the check."""
    import shlex

    result = _server_check(settings)
    if not result.ok:
        lines = [
            "the run was not started: the model server cannot do what these roles need",
            *result.problem_lines(),
            f"every check: dialforge check-server {shlex.quote(str(config))}",
            f"to start the run anyway: {anyway}",
        ]
        typer.echo("\n".join(lines), err=True)
        raise typer.Exit(2)
    endpoints = ", ".join(f"{endpoint.base_url} ({endpoint.model})" for endpoint in result.endpoints)
    typer.echo(f"server check: every role's needs hold at {endpoints}", err=True)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)


@tools_app.command("scaffold")
def tools_scaffold(
    db: Annotated[Path, typer.Option("--db", help="the SQLite database")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="where to write tools.json")] = None,
) -> None:
    """Write deterministic SQL tools for every table of a database schema."""
    from dialforge.environments.sql.scaffold import scaffold_notes, scaffold_tools, tools_json, write_tools_json
    from dialforge.environments.sql.schema import introspect
    from dialforge.environments.sql.source import DatabaseSourceError, open_readonly

    try:
        conn = open_readonly(db)
    except DatabaseSourceError as exc:
        typer.echo(f"dialforge tools scaffold: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        schema = introspect(conn)
    finally:
        conn.close()
    tools = scaffold_tools(schema)
    if output is None:
        typer.echo(tools_json(tools))
    else:
        try:
            write_tools_json(tools, output)
        except OSError as exc:
            typer.echo(f"dialforge tools scaffold: cannot write {output}: {exc.strerror or exc}", err=True)
            raise typer.Exit(2) from None
    for note in scaffold_notes(schema):
        typer.echo(f"schema defect: {note}", err=True)
    typer.echo(f"wrote {len(tools)} tools for {len(schema.tables)} tables to {output or 'stdout'}", err=True)


@tools_app.command("check")
def tools_check(
    tools: Annotated[
        Path,
        typer.Argument(help="the tools: a JSON list (tools scaffold) or JSONL (a run's artifacts/tools.jsonl)"),
    ],
    db: Annotated[Path, typer.Option("--db", help="the SQLite database (.sqlite) or SQL script (.sql)")],
    domain: Annotated[
        str | None, typer.Option("--domain", help="the domain whose tools to check, when the file holds several")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    today: Annotated[
        str | None,
        typer.Option(
            "--today",
            help="what SQL's 'now' reads in the trials, as ISO date and time: the config's dialogue.today "
            "(default: the wall clock)",
        ),
    ] = None,
) -> None:
    """Validate and trial-execute SQL tools; exit 1 if any is invalid.

    Each tool runs on throwaway forks with arguments from the data until a run returns or changes rows; a run
    that returns or changes none proves nothing. The output says which run proved each tool, with its arguments
    and the errors earlier runs met, why a tool is valid without proof (the data leaves no way), or why it is
    invalid. Also reported, without failing: the schema's defects, and columns a write tool sets that no read
    tool returns (read-back gaps).
    """
    import orjson
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from dialforge.environments.sql.environment import SQLDatabase
    from dialforge.environments.sql.scaffold import scaffold_notes
    from dialforge.environments.sql.schema import column_ref
    from dialforge.environments.sql.source import DatabaseSourceError
    from dialforge.environments.sql.validation import read_back_gaps, validate_tools
    from dialforge.pipeline.supplied import load_sql_tools

    try:
        database = SQLDatabase.load(db)
        sql_tools = load_sql_tools(tools, domain)
    except ValueError as exc:  # DatabaseSourceError is one too
        kind = "database" if isinstance(exc, DatabaseSourceError) else "tools file"
        typer.echo(f"dialforge tools check: {kind} {exc}", err=True)
        raise typer.Exit(2) from None
    if not sql_tools:
        which = f" for the domain {domain!r}" if domain else ""
        typer.echo(f"dialforge tools check: tools file {tools}: no tools{which}", err=True)
        raise typer.Exit(2)
    from datetime import datetime

    try:
        clock = None if today is None else datetime.fromisoformat(today)
    except ValueError:
        typer.echo(
            f"dialforge tools check: --today {today!r} is not an ISO date and time (2025-11-21T18:00:00)", err=True
        )
        raise typer.Exit(2) from None
    verdicts = validate_tools(sql_tools, database, clock=clock)
    gaps = read_back_gaps(sql_tools, database.schema)
    defects = scaffold_notes(database.schema)
    if as_json:
        for note in defects:
            typer.echo(f"schema defect: {note}", err=True)
        for verdict in verdicts:
            line = verdict.model_dump(include={"name", "valid", "reasons"}) | {"proof": verdict.proof}
            if verdict.trial:
                line["trial"] = verdict.trial
            if verdict.name in gaps:
                line["unread_columns"] = [column_ref(*column) for column in gaps[verdict.name]]
            typer.echo(orjson.dumps(line).decode())
    else:
        console = Console()
        table = Table("tool", "verdict")
        table.add_column("trial or reason", overflow="fold")  # long JSON arguments wrap, never cut
        for verdict in verdicts:
            trial = verdict.trial or {}
            evidence = [verdict.proof] if verdict.valid else verdict.reasons
            if verdict.valid and "arguments" in trial:
                evidence.append(f"arguments {orjson.dumps(trial['arguments'], default=str).decode()}")
            if verdict.valid:
                evidence.extend(f"also seen: {error}" for error in trial.get("errors", []))
            table.add_row(
                Text(verdict.name),
                Text("valid", style="green") if verdict.valid else Text("invalid", style="red"),
                Text("\n".join(evidence)),
            )
        console.print(table)
        for note in defects:
            console.print(Text(f"schema defect: {note}", style="yellow"))
        for name, columns in gaps.items():
            unread = ", ".join(column_ref(*column) for column in columns)
            console.print(Text(f"read-back gap: {name} writes {unread}, which no read tool returns", style="yellow"))
        kinds = {tool.name: tool.kind for tool in sql_tools}
        reads = [v for v in verdicts if v.valid and kinds[v.name] == "read"]
        returned = sum(1 for v in reads if v.trial and v.trial.get("rows"))
        writes = [v for v in verdicts if v.valid and kinds[v.name] == "write"]
        changed = sum(1 for v in writes if v.trial and v.trial.get("rows"))
        console.print(Text(f"{sum(v.valid for v in verdicts)} of {len(verdicts)} tools valid"))
        console.print(Text(f"{returned} of {len(reads)} valid read tools returned rows in a trial"))
        console.print(Text(f"{changed} of {len(writes)} valid write tools changed rows in a trial"))
    if not all(verdict.valid for verdict in verdicts):
        raise typer.Exit(1)


@app.command()
def extend(
    context: typer.Context,
    conversations: Annotated[
        Path,
        typer.Argument(
            help="existing conversations: OpenAI messages or ShareGPT records in .jsonl or .json, a .parquet file, "
            "or a directory saved with datasets' save_to_disk"
        ),
    ],
    config: Annotated[Path, typer.Option("--config", help="the run configuration (YAML); its first domain is used")],
    out: Annotated[Path | None, typer.Option("--out", help="run directory; running again resumes it")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="use the offline dry-run model, no server")] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="continue at most N conversations")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", min=1, help="dialogues in flight")] = None,
    force_new_config: Annotated[
        bool, typer.Option("--force-new-config", help="resume RUN_DIR even though the config changed")
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option("--retry-failed", help="run failed dialogues again from the start, replacing their records"),
    ] = False,
    skip_server_check: Annotated[
        bool, typer.Option("--skip-server-check", help="start without checking what the model servers can do")
    ] = False,
) -> None:
    """Continue existing conversations: each gets a goal that fits it, and the dialogue goes on from its last
    message; conversations that cannot be continued are recorded as failed, with the reason."""
    from dialforge.runner.extend import extend as extend_conversations

    settings = _load_config(config, dry_run)
    run_dir = out or Path("runs") / f"{conversations.stem}-extended"
    options = _checked_run_options(
        context,
        settings,
        config,
        run_dir,
        check_servers=not skip_server_check,
        dry_run=dry_run,
        limit=limit,
        concurrency=concurrency,
        force_new_config=force_new_config,
        retry_failed=retry_failed,
    )
    _execute(
        lambda reporter: extend_conversations(settings, conversations, run_dir, options, reporter),
        context,
        run_dir,
    )


def _load_config(path: Path, dry_run: bool) -> DialforgeConfig:
    """The config, or a clear message and exit 2; without --dry-run, an endpoint must be configured."""
    from dialforge.config import ConfigError, load_config

    try:
        settings = load_config(path)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if dry_run:
        typer.echo(
            "DRY RUN: every role uses the offline dry-run model; no server is contacted and the texts are "
            "placeholders, not model output.",
            err=True,
        )
    elif not settings.models.is_configured():
        typer.echo(
            f"{path}: no model endpoint is configured. Point it at an OpenAI-compatible server, e.g.\n"
            "  models:\n    default: {model: Qwen/Qwen3-8B, base_urls: http://localhost:8000/v1}   # vLLM\n"
            "  (Ollama: http://localhost:11434/v1; hosted APIs: add api_key_env: OPENAI_API_KEY)\n"
            "or set DIALFORGE_BASE_URL and DIALFORGE_MODEL, or try it offline with --dry-run.",
            err=True,
        )
        raise typer.Exit(2)
    if settings.dialogue.today is None and any(domain.database for domain in settings.domains):
        typer.echo(
            f"note: {path} sets no dialogue.today, so each dialogue gets a random date between 2023 and 2026, which "
            "may come before dates in the database; set dialogue.today to the day the data was taken.",
            err=True,
        )
    if settings.mode == "user" and (with_database := [d.name for d in settings.domains if d.database]):
        typer.echo(
            f"note: mode 'user' simulates every tool, so the databases of {', '.join(with_database)} only ground "
            "the goals: no tool runs on them and the goals' SQL checks are not run; mode 'user+exec' runs both.",
            err=True,
        )
    if settings.mode == "user" and (with_python := [d.name for d in settings.domains if d.python]):
        typer.echo(
            f"note: mode 'user' simulates every tool, so the Python tools of {', '.join(with_python)} give only "
            "their specs: none runs and no check is run; mode 'user+exec' runs them.",
            err=True,
        )
    return settings


def _command_line(context: typer.Context, run_dir: Path, *add: str) -> str:
    """The command being run, shell-quoted, with every argument and option it was given, ``--out`` as the run
    directory it resolved to, and the flags ``add``: pasted as it is, it resumes the same run the same way."""
    import shlex

    words = ["dialforge", context.info_name or ""]
    for param in context.command.params:
        value = context.params.get(param.name or "")
        if param.param_type_name == "argument":
            words.append(str(value))
            continue
        if param.name == "out" or value is None or value is False or value == param.default:
            continue
        option = max(param.opts, key=len)
        if value is True:
            words.append(option)
            continue
        for one in value if isinstance(value, list | tuple) else [value]:
            words += [option, str(one.value if isinstance(one, StrEnum) else one)]
    words += ["--out", str(run_dir)]
    words += [flag for flag in add if flag not in words]
    return shlex.join(words)


def _execute(job: Callable[[Reporter], Coroutine[Any, Any, RunSummary]], context: typer.Context, run_dir: Path) -> None:
    """Run a generation job; Ctrl-C and store trouble stop it cleanly with the way to resume."""
    from dialforge.config import ConfigError
    from dialforge.llm.errors import ModelRequestRejected
    from dialforge.pipeline.artifacts import StoreError
    from dialforge.runner.progress import reporter_for
    from dialforge.runner.run import ConfigChanged
    from dialforge.runner.usage_file import USAGE_FILE

    resume = f"resume with: {_command_line(context, run_dir)}"
    try:
        reporter = reporter_for()
        summary = asyncio.run(job(reporter))
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted; every finished step is stored in {run_dir}; {resume}", err=True)
        raise typer.Exit(130) from None
    except (ConfigChanged, ConfigError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except ModelRequestRejected as exc:
        if exc.fix is None:
            typer.echo(f"the model server refused the request: {exc}", err=True)
        else:
            typer.echo(
                f"the run stopped: the model server refuses every request like this one\n  {exc}\nfix: {exc.fix}\n"
                f"no dialogue was marked finished because of it; once it is fixed, {resume} (each dialogue goes on "
                "from its last stored step)",
                err=True,
            )
        raise typer.Exit(1) from None
    except StoreError as exc:
        typer.echo(f"{exc}, then {resume}" if exc.resumable else str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"{summary.finished} dialogues finished now ({summary.failed} failed, {summary.valid} judged valid), "
        f"{summary.skipped} earlier; dataset: {run_dir / 'dialogues.jsonl'}"
    )
    typer.echo(f"{reporter.summary()}\nper role and model, every session: {run_dir / USAGE_FILE}")
    if summary.failed:
        typer.echo(
            f"{summary.failed} failed (each record's 'failure' says why); once that is fixed, run them again "
            f"from the start: {_command_line(context, run_dir, '--retry-failed')}"
        )


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    dataset_format: Annotated[ExportFormat, typer.Option("--format", help="training data format")],
    output: Annotated[Path, typer.Option("-o", "--output", help="where to write the dataset")],
    only_valid: Annotated[bool, typer.Option("--only-valid", help="skip dialogues the judge rejected")] = False,
    split: Annotated[
        str | None, typer.Option("--split", help="deterministic split into OUT.<name>.ext, e.g. train=0.95,test=0.05")
    ] = None,
    reasoning: Annotated[
        str, typer.Option("--reasoning", help="keep or drop the assistant's reasoning (openai: always dropped)")
    ] = "drop",
    hf_dataset: Annotated[
        Path | None,
        typer.Option("--hf-dataset", help="also save a datasets DatasetDict here (needs the datasets library)"),
    ] = None,
    push_to_hub: Annotated[
        str | None,
        typer.Option(
            "--push-to-hub", help="also push the dataset to this Hugging Face Hub repo (needs the datasets library)"
        ),
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="create the Hub repo as private")] = False,
    hub_token_env: Annotated[
        str, typer.Option("--hub-token-env", help="environment variable holding the Hub write token")
    ] = "HF_TOKEN",
    include_failed: Annotated[
        bool, typer.Option("--include-failed", help="also export dialogues that stopped early")
    ] = False,
    truncated: Annotated[
        Truncated,
        typer.Option(
            "--truncated", help="dialogues cut back to their last completed goal (judged on the goals they kept)"
        ),
    ] = Truncated.include,
    one_call_per_message: Annotated[
        bool,
        typer.Option("--one-call-per-message", help="split parallel tool calls (for Llama 3.1-style templates)"),
    ] = False,
    nullable_as_flag: Annotated[
        bool,
        typer.Option(
            "--nullable-as-flag",
            help='write nullable types ["T", "null"] as "T" plus "nullable": true (for Hermes-style templates)',
        ),
    ] = False,
    string_arguments: Annotated[
        bool,
        typer.Option("--string-arguments", help="trl: tool-call arguments as JSON text (keeps nulls through axolotl)"),
    ] = False,
    check_template: Annotated[
        list[Path] | None,
        typer.Option("--check-template", help="trl: render every record through this Jinja chat template (repeatable)"),
    ] = None,
    train_on: Annotated[
        str,
        typer.Option(
            "--train-on",
            help="all, or continuation: no loss on the imported part of extended conversations (openai, trl)",
        ),
    ] = "all",
    seed: Annotated[int, typer.Option("--seed", help="seed of the split")] = 0,
) -> None:
    """Write a run's dialogues as a training dataset."""
    from dialforge.export import ExportError, HubPush, export_run, parse_split

    try:
        if reasoning not in ("keep", "drop"):
            raise ExportError(f"--reasoning must be keep or drop, not {reasoning!r}")
        if private and not push_to_hub:
            raise ExportError("--private applies to --push-to-hub REPO_ID; add that, or drop --private")
        result = export_run(
            run_dir,
            dataset_format.value,
            output,
            only_valid=only_valid,
            reasoning=reasoning,  # type: ignore[arg-type]
            split=parse_split(split) if split else None,
            hf_dataset=hf_dataset,
            push_to_hub=HubPush(push_to_hub, private, hub_token_env) if push_to_hub else None,
            include_failed=include_failed,
            include_truncated=truncated is Truncated.include,
            one_call_per_message=one_call_per_message,
            nullable_as_flag=nullable_as_flag,
            string_arguments=string_arguments,
            check_templates=check_template or (),
            train_on=train_on,  # type: ignore[arg-type]
            seed=seed,
        )
    except ExportError as exc:
        typer.echo(f"dialforge export: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(result.summary())


@app.command()
def stats(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Summarize a run: dialogues, turns, tool calls, validity, usage and cost."""
    from dialforge.report.stats import run_dir_statistics
    from dialforge.report.text import render_text

    _dialogues_file(run_dir, "stats")
    try:
        statistics = run_dir_statistics(run_dir)
    except ValueError as exc:
        typer.echo(f"dialforge stats: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(statistics.model_dump_json(indent=2) if as_json else render_text(statistics).rstrip("\n"))


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    output: Annotated[Path, typer.Option("-o", "--output", help="where to write the HTML report")],
    max_dialogues: Annotated[
        int | None,
        typer.Option("--max-dialogues", min=1, help="dialogues in the browser, 2000 by default (statistics use all)"),
    ] = None,
) -> None:
    """Write an HTML report of a run."""
    from dialforge.report.html import write_report

    _dialogues_file(run_dir, "report")
    try:
        written = write_report(run_dir, output, max_dialogues=max_dialogues)
    except ValueError as exc:
        typer.echo(f"dialforge report: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {written}")


def _dialogues_file(run_dir: Path, command: str) -> Path:
    """RUN_DIR/dialogues.jsonl, or exit 2 with one line saying what is missing."""
    if not run_dir.is_dir():
        typer.echo(f"dialforge {command}: no run directory at {run_dir}", err=True)
        raise typer.Exit(2)
    path = run_dir / "dialogues.jsonl"
    if not path.is_file():
        typer.echo(f"dialforge {command}: no dialogues.jsonl in {run_dir}", err=True)
        raise typer.Exit(2)
    return path


@app.command("mock-server")
def mock_server(
    host: Annotated[str, typer.Option("--host", help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="0 picks a free port")] = 8000,
    latency_ms: Annotated[float, typer.Option("--latency-ms", min=0, help="delay before every reply")] = 200.0,
    fault_rate: Annotated[
        float, typer.Option("--fault-rate", min=0, max=1, help="chance a request gets a random fault")
    ] = 0.0,
    faults: Annotated[
        str | None,
        typer.Option(
            "--faults", help="comma list of fault kinds to draw from (default: all but context_length, chat_template)"
        ),
    ] = None,
    reject_json_schema: Annotated[
        bool, typer.Option("--reject-json-schema", help="refuse response_format json_schema, like servers without it")
    ] = False,
    template_without_tools: Annotated[
        bool,
        typer.Option(
            "--template-without-tools",
            help="a chat template without tool support, as llama.cpp serves it: tools dropped from the prompt, "
            "tool_choice ignored, a history with a tool message refused (400)",
        ),
    ] = False,
    reasoning: Annotated[
        Reasoning, typer.Option("--reasoning", help="emit reasoning as reasoning_content, inline <think>, or not")
    ] = Reasoning.none,
    retry_after: Annotated[float, typer.Option("--retry-after", min=0, help="seconds a 429 asks to wait")] = 1.0,
    slow_seconds: Annotated[float, typer.Option("--slow-seconds", min=0, help="delay of the slow fault")] = 30.0,
    model_name: Annotated[str, typer.Option("--model-name", help="the model name served")] = "mock-model",
    seed: Annotated[int, typer.Option("--seed", help="seed of the dry-run replies and random faults")] = 0,
    script: Annotated[
        Path | None, typer.Option("--script", exists=True, dir_okay=False, help="JSONL of replies served in order")
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option("--api-key-env", help="require 'Authorization: Bearer $NAME' (the key is read from NAME)"),
    ] = None,
) -> None:
    """Serve an OpenAI-compatible chat endpoint with latency and fault injection, for testing clients."""
    from dialforge.mock_server import MockServerSettings, serve
    from dialforge.mock_server.faults import RANDOM_FAULTS, parse_faults

    try:
        kinds = parse_faults(faults.split(",")) if faults is not None else RANDOM_FAULTS
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--faults") from None
    api_key = os.environ.get(api_key_env) if api_key_env else None
    if api_key_env and not api_key:
        raise typer.BadParameter(f"the environment variable {api_key_env} is not set", param_hint="--api-key-env")
    settings = MockServerSettings(
        model_name=model_name,
        latency_ms=latency_ms,
        fault_rate=fault_rate,
        faults=kinds,
        reject_json_schema=reject_json_schema,
        template_without_tools=template_without_tools,
        reasoning=reasoning.value,
        retry_after=retry_after,
        slow_seconds=slow_seconds,
        seed=seed,
        script=script,
        api_key=api_key,
    )
    try:
        serve(settings, host, port, on_ready=lambda url: print(f"mock-server listening on {url}", flush=True))
    except OSError as exc:
        typer.echo(f"mock-server cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None


if __name__ == "__main__":
    app(prog_name="dialforge")
