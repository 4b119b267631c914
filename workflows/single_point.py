"""``nanohetero.single_point``: one CP2K energy calculation of an isolated model, and its orbital energies."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain

from aiida_nanohetero.calcfunctions.cp2k import parse_orbital_energies, place_in_cubic_box
from aiida_nanohetero.workflows.cp2k_base import Cp2kRestartWorkChain
from aiida_nanohetero.workflows.cp2k_versions import spell_for_version
from aiida_nanohetero.workflows.protocols import ProtocolMixin

__all__ = ('SinglePointWorkChain',)


def cp2k_walltime(max_wallclock_seconds: int, margin: float) -> int:
    """CP2K's ``GLOBAL/WALLTIME``: a few minutes below the scheduler's limit so CP2K stops cleanly."""
    return int(max(30, min(max_wallclock_seconds * (1 - margin), max_wallclock_seconds - 60)))


def scheduler_options(n_atoms: int, scheduler: Mapping[str, Any]) -> dict[str, Any]:
    """Scheduler options for one CP2K job on a model of ``n_atoms`` atoms, from a protocol's ``scheduler`` block.

    ``local``: one rank without MPI (OpenMPI refuses to run as root) and one OpenMP thread. ``cluster``: one MPI
    rank per ``atoms_per_mpiproc`` atoms, rounded up to whole nodes of ``cores_per_machine`` cores, at most
    ``max_machines`` nodes, ``omp_num_threads`` cores per rank.
    """
    threads = int(scheduler['omp_num_threads'])
    if scheduler['mode'] == 'local':
        return {
            'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
            'withmpi': False,
            'environment_variables': {'OMP_NUM_THREADS': str(threads)},
        }
    if scheduler['mode'] != 'cluster':
        raise ValueError(f'scheduler.mode must be local or cluster, not "{scheduler["mode"]}"')
    ranks_per_machine = max(1, int(scheduler['cores_per_machine']) // threads)
    ranks = math.ceil(n_atoms / float(scheduler['atoms_per_mpiproc']))
    machines = max(1, min(int(scheduler['max_machines']), math.ceil(ranks / ranks_per_machine)))
    return {
        'resources': {
            'num_machines': machines,
            'num_mpiprocs_per_machine': ranks_per_machine,
            'num_cores_per_mpiproc': threads,
        },
        'withmpi': True,
        'environment_variables': {'OMP_NUM_THREADS': str(threads)},
    }


def job_options(
    protocol_options: Mapping, n_atoms: int, scheduler: Mapping, user_options: Mapping | None, code=None
) -> dict:
    """The protocol's options, the computer's job defaults, the size-derived resources, then the user's options
    (which win).

    A code set up without MPI (``with_mpi`` False, as on the embedded default) runs one process: the size-derived
    MPI layout is then dropped rather than contradicting the code. The computer's defaults come from its profile
    spec (``nanohetero setup --computer``): partition, account and QOS of every job, and the cores per node that
    the ``cluster`` mode fills.
    """
    from aiida_nanohetero.profiles.setup import computer_job_defaults
    from aiida_nanohetero.workflows.protocols import deep_merge

    computer_options, cores_per_machine = computer_job_defaults(code)
    if cores_per_machine:
        scheduler = {**scheduler, 'cores_per_machine': cores_per_machine}
    derived = scheduler_options(n_atoms, scheduler)
    if code is not None and code.with_mpi is False and derived['withmpi']:
        derived = scheduler_options(n_atoms, {**scheduler, 'mode': 'local'})
    options = deep_merge(deep_merge(protocol_options, computer_options), derived)
    return deep_merge(options, dict(user_options or {}))


def kind_sections(structure: orm.StructureData, kinds: Mapping[str, Mapping[str, str]]) -> list[dict[str, str]]:
    """The ``FORCE_EVAL/SUBSYS/KIND`` sections for the kinds of ``structure``, from a protocol's ``kinds`` table."""
    symbols = {kind.name: kind.symbol for kind in structure.kinds}
    missing = sorted(set(symbols.values()) - set(kinds))
    if missing:
        raise ValueError(
            f'no basis set / pseudopotential defined for element(s) {", ".join(missing)}; '
            f'the protocol covers {", ".join(sorted(kinds))} (add them with overrides={{"kinds": {{...}}}})'
        )
    return [{'_': name, 'ELEMENT': symbol, **kinds[symbol]} for name, symbol in sorted(symbols.items())]


class SinglePointWorkChain(ProtocolMixin, WorkChain):
    """Place a model in a cubic box, run a CP2K single point through ``Cp2kRestartWorkChain`` and parse its orbitals."""

    _protocol_file = 'single_point.yaml'
    _open_override_keys = ('cp2k.cp2k.parameters', 'cp2k.cp2k.settings', 'cp2k.cp2k.metadata', 'kinds')

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The model: an isolated cluster (cell ignored).')
        spec.input(
            'vacuum',
            valid_type=orm.Float,
            default=lambda: orm.Float(4.0),
            help='Vacuum in Å between the outermost atoms and the faces of the cubic cell.',
        )
        spec.expose_inputs(
            Cp2kRestartWorkChain,
            namespace='cp2k',
            exclude=('cp2k.structure',),
            namespace_options={'help': 'CP2K inputs.'},
        )
        spec.outline(cls.setup, cls.run_cp2k, cls.inspect_cp2k, cls.parse_orbitals)
        spec.output('structure', valid_type=orm.StructureData, help='The model in the cell CP2K used.')
        spec.output('output_parameters', valid_type=orm.Dict, help='What aiida-cp2k parsed (energy in Hartree).')
        spec.output('orbitals', valid_type=orm.ArrayData, help='Orbital energies (eV) and occupations.')
        spec.exit_code(
            401, 'ERROR_SUB_PROCESS_FAILED_CP2K', message='The CP2K calculation failed: exit status {exit_status}.'
        )
        spec.exit_code(402, 'ERROR_ORBITALS_NOT_PARSED', message='The orbitals could not be read: {error}')

    def setup(self):
        self.ctx.structure = place_in_cubic_box(self.inputs.structure, self.inputs.vacuum)
        self.out('structure', self.ctx.structure)

    def run_cp2k(self):
        inputs = AttributeDict(self.exposed_inputs(Cp2kRestartWorkChain, namespace='cp2k'))
        inputs.cp2k.structure = self.ctx.structure
        inputs.metadata.call_link_label = 'cp2k'
        node = self.submit(Cp2kRestartWorkChain, **inputs)
        self.report(f'launched Cp2kRestartWorkChain<{node.pk}> for {self.ctx.structure.get_formula()}')
        return ToContext(cp2k=node)

    def inspect_cp2k(self):
        node = self.ctx.cp2k
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED_CP2K.format(exit_status=node.exit_status)
        self.out('output_parameters', node.outputs.output_parameters)

    def parse_orbitals(self):
        try:
            orbitals = parse_orbital_energies(self.ctx.cp2k.outputs.retrieved)
        except Exception as exception:
            return self.exit_codes.ERROR_ORBITALS_NOT_PARSED.format(error=str(exception))
        self.out('orbitals', orbitals)
        self.report(
            f'{orbitals.base.attributes.get("n_electrons"):.0f} electrons, '
            f'HOMO-LUMO gap {orbitals.base.attributes.get("gap_ev"):.3f} eV'
        )

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        structure: orm.StructureData,
        protocol: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        *,
        basis_file: orm.SinglefileData | None = None,
        potential_file: orm.SinglefileData | None = None,
        options: Mapping[str, Any] | None = None,
    ):
        """A builder filled from a protocol (``tiny``, ``mini`` or ``paper``; see ``get_available_protocols()``).

        :param code: a CP2K code (``default_calc_job_plugin`` ``cp2k``).
        :param overrides: nested inputs deep-merged over the protocol's; unknown keys are an error, except inside
            the CP2K input (``cp2k.cp2k.parameters``), the settings, the metadata and ``kinds``.
        :param basis_file, potential_file: the CP2K data files as stored nodes; default: the stored copies of
            ``BASIS_MOLOPT`` and ``GTH_POTENTIALS`` from CP2K's data directory (stored on first use).
        :param options: calculation options (resources, max_wallclock_seconds, ...) merged over the protocol's.
        """
        check_cp2k_code(code)
        inputs = cls.get_protocol_inputs(protocol, overrides)
        files = data_files(basis_file, potential_file)
        builder = cls.get_builder()
        builder.structure = structure
        builder.vacuum = orm.Float(inputs['vacuum'])
        fill_cp2k_namespace(builder.cp2k, inputs['cp2k'], inputs, code, structure, files, options)
        return builder


def data_files(basis_file=None, potential_file=None) -> dict[str, orm.SinglefileData]:
    """The basis-set and potential nodes to use: those given, else the stored copies of CP2K's defaults."""
    from aiida_nanohetero.workflows.cp2k_files import get_cp2k_data_files

    if basis_file is None or potential_file is None:
        defaults = get_cp2k_data_files()
        basis_file = basis_file or defaults['basis']
        potential_file = potential_file or defaults['potential']
    return {'basis': basis_file, 'potential': potential_file}


def fill_cp2k_namespace(namespace, step: Mapping, inputs: Mapping, code, structure, files, options, edit=None) -> None:
    """Fill one ``Cp2kRestartWorkChain`` input namespace of a builder from a protocol step's inputs.

    :param step: the protocol's inputs of this step (``max_iterations``, ``clean_workdir``, ``cp2k``).
    :param inputs: all protocol inputs (``kinds``, ``scheduler``, ``walltime_margin``).
    :param files: ``{'basis': node, 'potential': node}``.
    :param options: the user's calculation options; they win over the protocol's and the size-derived ones.
    :param edit: optional callable that changes the CP2K input dictionary in place before it is stored.
    """
    parameters = copy.deepcopy(step['cp2k']['parameters'])
    dft = parameters['FORCE_EVAL']['DFT']
    dft['BASIS_SET_FILE_NAME'] = files['basis'].filename
    dft['POTENTIAL_FILE_NAME'] = files['potential'].filename
    parameters['FORCE_EVAL']['SUBSYS']['KIND'] = kind_sections(structure, inputs['kinds'])
    job = job_options(step['cp2k']['metadata']['options'], len(structure.sites), inputs['scheduler'], options, code)
    parameters['GLOBAL']['WALLTIME'] = cp2k_walltime(job['max_wallclock_seconds'], inputs['walltime_margin'])
    if edit is not None:
        edit(parameters)
    parameters = spell_for_version(parameters, check_cp2k_code(code))
    namespace.max_iterations = orm.Int(step['max_iterations'])
    namespace.clean_workdir = orm.Bool(step['clean_workdir'])
    namespace.handler_overrides = orm.Dict({'restart_incomplete_calculation': {'enabled': True}})
    namespace.cp2k.code = code
    namespace.cp2k.parameters = orm.Dict(parameters)
    namespace.cp2k.settings = orm.Dict(step['cp2k']['settings'])
    namespace.cp2k.file = dict(files)
    namespace.cp2k.metadata.options = job


def check_cp2k_code(code) -> tuple[int, int]:
    """Raise a clear ``ValueError`` unless ``code`` is a stored code for aiida-cp2k's ``cp2k`` calculation of a
    supported CP2K release; return that release (``(2023, 1)``), read once and kept in the code's extras."""
    from aiida_nanohetero.workflows.cp2k_versions import code_cp2k_version

    if not isinstance(code, orm.AbstractCode):
        raise ValueError(f'code must be an AiiDA code for CP2K, got {type(code).__name__}')
    plugin = code.default_calc_job_plugin
    if plugin != 'cp2k':
        raise ValueError(
            f'code "{code.full_label}" runs the calculation plugin "{plugin}", not "cp2k": '
            'pass a CP2K code (verdi code list -P cp2k)'
        )
    return code_cp2k_version(code)
