"""The ``nanohetero`` command line, in the style of ``verdi`` and its plugins."""

from __future__ import annotations

import functools
import sys
import warnings

import click

from aiida_nanohetero import __version__

__all__ = ('cli',)

DEFAULT_PROFILE = 'nanohetero'


class Context:
    """What the top-level group passes to its commands."""

    def __init__(self, profile_name: str):
        self.profile_name = profile_name
        self._profile = None

    def load_profile(self):
        """Load the AiiDA profile selected with ``-p``, or stop with a clear message if there is none."""
        if self._profile is None:
            from aiida.manage.configuration import get_config, load_profile

            config = get_config(create=True)
            if self.profile_name not in config.profile_names:
                from aiida_nanohetero.profiles.setup import aiida_config_dir

                known = ', '.join(config.profile_names) or 'none'
                raise click.UsageError(
                    f'AiiDA profile "{self.profile_name}" does not exist in {aiida_config_dir()} (profiles: {known}): '
                    'create it with `nanohetero setup`, or pick another with -p/--profile.'
                )
            self._profile = load_profile(self.profile_name, allow_switch=True)
            from aiida_nanohetero.profiles.services import check_storage

            problem = check_storage(self._profile)  # a PostgreSQL that is down: one sentence, not a traceback
            if problem:
                raise click.ClickException(problem)
        return self._profile


pass_context = click.make_pass_decorator(Context)


def clean_errors(function):
    """Turn the package's own input errors into one-line click errors instead of tracebacks."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from aiida_nanohetero.profiles import ProfileSpecError
        from aiida_nanohetero.workflows.protocols import ProtocolError

        try:
            return function(*args, **kwargs)
        except (ProfileSpecError, ProtocolError, ValueError) as exception:
            raise click.ClickException(str(exception)) from None

    return wrapper


@click.group(context_settings={'help_option_names': ['-h', '--help']})
@click.version_option(__version__, prog_name='aiida-nanohetero')
@click.option(
    '-p',
    '--profile',
    'profile_name',
    default=DEFAULT_PROFILE,
    show_default=True,
    envvar='NANOHETERO_PROFILE',
    help='AiiDA profile to use (environment: NANOHETERO_PROFILE).',
)
@click.pass_context
def cli(ctx, profile_name):
    """aiida-nanohetero: perovskite / chalcohalide nanocrystal heterostructures with AiiDA and CP2K.

    \b
    Quick start:
      nanohetero setup     create the embedded AiiDA profile, computer and CP2K code
      nanohetero status    show what is set up and whether CP2K works
      nanohetero demo      run the demo calculation and print what it found
    """
    # `nanohetero setup` and `status` say where AiiDA keeps its data; AiiDA's own first-run warning adds nothing
    warnings.filterwarnings('ignore', message='Creating AiiDA configuration folder')
    ctx.obj = Context(profile_name)


def _register() -> None:
    from aiida_nanohetero.cli import analyse, build, demo, run, services, setup, status
    from aiida_nanohetero.cli import code_version as code_version_command
    from aiida_nanohetero.cli import export as export_command
    from aiida_nanohetero.cli import figures as figures_command
    from aiida_nanohetero.cli import results as results_command

    cli.add_command(setup.setup)
    cli.add_command(status.status)
    cli.add_command(demo.demo)
    cli.add_command(run.run)
    cli.add_command(build.build)
    cli.add_command(analyse.analyse)
    cli.add_command(services.services)
    cli.add_command(results_command.results)
    cli.add_command(figures_command.figures)
    cli.add_command(export_command.export)
    cli.add_command(code_version_command.code_version)


_register()


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(cli())
