"""``nanohetero.relax_single_point``: geometry optimisation, then the single point the orbital analysis reads."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, if_

from aiida_nanohetero.calcfunctions.analysis import compute_ipr, parse_orbitals, summarise_model
from aiida_nanohetero.calcfunctions.cp2k import place_in_cubic_box
from aiida_nanohetero.workflows.cp2k_base import WFN_FILE, Cp2kRestartWorkChain, merge_parameters, uses_ot
from aiida_nanohetero.workflows.protocols import ProtocolMixin, deep_merge
from aiida_nanohetero.workflows.single_point import (
    SinglePointWorkChain,
    check_cp2k_code,
    data_files,
    fill_cp2k_namespace,
)

__all__ = ('RelaxAndSinglePointWorkChain', 'mo_window_range', 'valence_electrons')


def valence_electrons(structure: orm.StructureData, kinds: Mapping[str, Mapping[str, str]]) -> int:
    """Number of valence electrons of a neutral model, from the ``-q<N>`` of each element's GTH potential."""
    total = 0
    for site in structure.sites:
        symbol = structure.get_kind(site.kind_name).symbol
        match = re.search(r'-q(\d+)$', kinds[symbol]['POTENTIAL'])
        if match is None:
            raise ValueError(f'cannot read the valence of {symbol} from its potential "{kinds[symbol]["POTENTIAL"]}"')
        total += int(match.group(1))
    return total


def mo_window_range(n_electrons: int, occupied: int, virtual: int) -> tuple[int, int]:
    """CP2K's 1-based ``MO_INDEX_RANGE`` holding ``occupied`` orbitals up to the HOMO and ``virtual`` above it."""
    if n_electrons % 2:
        raise ValueError(f'{n_electrons} valence electrons: the model is not closed-shell (check its charge balance)')
    if occupied < 1 or virtual < 1:
        raise ValueError(f'mo_window needs at least one occupied and one virtual orbital, got {occupied}/{virtual}')
    homo = n_electrons // 2
    return max(1, homo - occupied + 1), homo + virtual


class RelaxAndSinglePointWorkChain(ProtocolMixin, WorkChain):
    """Optimise a model's geometry with CP2K, then run the single point whose output the orbital analysis reads.

    The single point restarts from the relaxation's wavefunction and prints the orbital energies and
    coefficients of a window around the gap (``.MOLog``), the overlap matrix (``.csr``) and the projected
    densities of states per kind and per domain (``.pdos``), all retrieved.
    """

    _protocol_file = 'relax_single_point.yaml'
    _open_override_keys = (
        'relax.cp2k.parameters',
        'relax.cp2k.settings',
        'relax.cp2k.metadata',
        'single_point.cp2k.parameters',
        'single_point.cp2k.settings',
        'single_point.cp2k.metadata',
        'kinds',
    )

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The model: an isolated cluster (cell ignored).')
        spec.input(
            'labels',
            valid_type=orm.ArrayData,
            required=False,
            help='Per-atom labels from the builders (array `domain`); each domain gets its own projected DOS.',
        )
        spec.input('vacuum', valid_type=orm.Float, default=lambda: orm.Float(4.0), help='Vacuum in Å.')
        spec.input('relax_geometry', valid_type=orm.Bool, default=lambda: orm.Bool(True), help='Run the relaxation.')
        spec.input(
            'ipr_method',
            valid_type=orm.Str,
            default=lambda: orm.Str('paper'),
            validator=_validate_ipr_method,
            help="IPR method: paper (the authors' signed sums, default), lowdin or mulliken.",
        )
        spec.input(
            'ipr_threshold',
            valid_type=orm.Float,
            default=lambda: orm.Float(0.03),
            help='States with IPR below this are delocalised: the band edges are taken among them (seed: 0.03).',
        )
        spec.expose_inputs(
            Cp2kRestartWorkChain,
            namespace='relax',
            exclude=('cp2k.structure',),
            namespace_options={'required': False, 'populate_defaults': False, 'help': 'The geometry optimisation.'},
        )
        spec.expose_inputs(
            Cp2kRestartWorkChain,
            namespace='single_point',
            exclude=('cp2k.structure', 'cp2k.parent_calc_folder'),
            namespace_options={'help': 'The final single point.'},
        )
        spec.outline(
            cls.setup,
            if_(cls.should_relax)(cls.run_relax, cls.inspect_relax),
            cls.run_single_point,
            cls.inspect_single_point,
            cls.analyse,
        )
        spec.output('structure', valid_type=orm.StructureData, help='The model in its CP2K cell, before relaxation.')
        spec.output('relaxed_structure', valid_type=orm.StructureData, required=False, help='The relaxed model.')
        spec.output('relax_parameters', valid_type=orm.Dict, required=False, help='Parsed output of the relaxation.')
        spec.output('output_parameters', valid_type=orm.Dict, help='Parsed output of the single point.')
        spec.output('retrieved', valid_type=orm.FolderData, help='The single point files the analysis reads.')
        spec.output(
            'orbitals', valid_type=orm.ArrayData, help='Energies (eV), occupations, coefficients of the window.'
        )
        spec.output('ipr', valid_type=orm.ArrayData, help='IPR, element and domain contributions of each orbital.')
        spec.output('summary', valid_type=orm.Dict, help='Band edges, gaps, edge domains, alignment.')
        spec.exit_code(
            401, 'ERROR_RELAX_FAILED', message='The geometry optimisation failed: exit status {exit_status}.'
        )
        spec.exit_code(
            402, 'ERROR_SINGLE_POINT_FAILED', message='The final single point failed: exit status {exit_status}.'
        )
        spec.exit_code(403, 'ERROR_ORBITALS_NOT_PARSED', message='The orbitals could not be read: {error}')
        spec.exit_code(404, 'ERROR_ANALYSIS_FAILED', message='The orbital analysis failed: {error}')

    def setup(self):
        self.ctx.structure = place_in_cubic_box(self.inputs.structure, self.inputs.vacuum)
        self.out('structure', self.ctx.structure)

    def should_relax(self):
        return self.inputs.relax_geometry.value and 'relax' in self.inputs

    def run_relax(self):
        inputs = AttributeDict(self.exposed_inputs(Cp2kRestartWorkChain, namespace='relax'))
        inputs.cp2k.structure = self.ctx.structure
        inputs.metadata.call_link_label = 'relax'
        node = self.submit(Cp2kRestartWorkChain, **inputs)
        self.report(f'relaxing {self.ctx.structure.get_formula()}: Cp2kRestartWorkChain<{node.pk}>')
        return ToContext(relax=node)

    def inspect_relax(self):
        node = self.ctx.relax
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_RELAX_FAILED.format(exit_status=node.exit_status)
        self.ctx.structure = node.outputs.output_structure
        self.out('relaxed_structure', node.outputs.output_structure)
        self.out('relax_parameters', node.outputs.output_parameters)

    def run_single_point(self):
        inputs = AttributeDict(self.exposed_inputs(Cp2kRestartWorkChain, namespace='single_point'))
        inputs.cp2k.structure = self.ctx.structure
        if 'relax' in self.ctx:
            # start from the relaxation's converged wavefunction
            last = _last_calculation(self.ctx.relax)
            if WFN_FILE in last.outputs.remote_folder.listdir():
                inputs.cp2k.parent_calc_folder = last.outputs.remote_folder
                parameters = merge_parameters(
                    inputs.cp2k.parameters.get_dict(),
                    {
                        'FORCE_EVAL': {
                            'DFT': {'RESTART_FILE_NAME': f'./parent_calc/{WFN_FILE}', 'SCF': {'SCF_GUESS': 'RESTART'}}
                        }
                    },
                )
                inputs.cp2k.parameters = orm.Dict(parameters)
        inputs.metadata.call_link_label = 'single_point'
        node = self.submit(Cp2kRestartWorkChain, **inputs)
        self.report(f'single point of {self.ctx.structure.get_formula()}: Cp2kRestartWorkChain<{node.pk}>')
        return ToContext(single_point=node)

    def inspect_single_point(self):
        node = self.ctx.single_point
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_SINGLE_POINT_FAILED.format(exit_status=node.exit_status)
        self.out('output_parameters', node.outputs.output_parameters)
        self.out('retrieved', node.outputs.retrieved)

    def analyse(self):
        """Orbitals of the window, their IPR and contributions, and the model's summary: three calcfunctions."""
        retrieved = self.ctx.single_point.outputs.retrieved
        try:
            orbitals = parse_orbitals(retrieved)
        except Exception as exception:
            return self.exit_codes.ERROR_ORBITALS_NOT_PARSED.format(error=str(exception))
        self.out('orbitals', orbitals)
        labels = {'labels': self.inputs.labels} if 'labels' in self.inputs else {}
        try:
            ipr = compute_ipr(orbitals, retrieved, self.inputs.ipr_method, **labels)
            summary = summarise_model(ipr, self.inputs.ipr_threshold)
        except Exception as exception:
            return self.exit_codes.ERROR_ANALYSIS_FAILED.format(error=str(exception))
        self.out('ipr', ipr)
        self.out('summary', summary)
        gap = summary.get('gap_filtered_ev')
        filtered = f', IPR-filtered gap {gap:.3f} eV' if gap is not None else ''
        alignment = f', alignment {summary["alignment"]}' if summary.get('alignment') else ''
        self.report(f'HOMO-LUMO gap {orbitals.base.attributes.get("gap_ev"):.3f} eV{filtered}{alignment}')

    @classmethod
    def get_protocol_inputs(cls, protocol: str | None = None, overrides: Mapping | None = None) -> dict[str, Any]:
        """The single-point protocol of the same name, with this work chain's additions merged in."""
        base = SinglePointWorkChain.get_protocol_inputs(protocol)
        own = super().get_protocol_inputs(protocol)
        common_cp2k = base.pop('cp2k')
        inputs = {**base, 'mo_window': own['mo_window']}
        for step in ('relax', 'single_point'):
            inputs[step] = deep_merge(common_cp2k, own[step])
        # the relaxation prints no orbitals (CP2K would write them at every geometry step) and retrieves none
        inputs['relax']['cp2k']['parameters']['FORCE_EVAL']['DFT'].get('PRINT', {}).pop('MO', None)
        inputs['relax']['cp2k']['settings'].pop('additional_retrieve_list', None)
        if overrides:
            inputs = deep_merge(inputs, overrides, strict=True, open_keys=cls._open_override_keys)
        for step in ('relax', 'single_point'):
            _drop_diagonalisation_under_ot(inputs[step]['cp2k']['parameters'])
        return inputs

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        structure: orm.StructureData,
        protocol: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        *,
        labels: orm.ArrayData | None = None,
        basis_file: orm.SinglefileData | None = None,
        potential_file: orm.SinglefileData | None = None,
        options: Mapping[str, Any] | None = None,
    ):
        """A builder filled from a protocol (``tiny``, ``mini`` or ``paper``).

        :param labels: the builders' per-atom labels (``domain`` array); each domain gets an ``&LDOS`` list.
        :param options: calculation options (resources, max_wallclock_seconds, ...) for both steps.
        """
        check_cp2k_code(code)
        inputs = cls.get_protocol_inputs(protocol, overrides)
        files = data_files(basis_file, potential_file)
        n_electrons = valence_electrons(structure, inputs['kinds'])
        low, high = mo_window_range(n_electrons, inputs['mo_window']['occupied'], inputs['mo_window']['virtual'])
        builder = cls.get_builder()
        builder.structure = structure
        builder.vacuum = orm.Float(inputs['vacuum'])
        if labels is not None:
            builder.labels = labels
        fill_cp2k_namespace(builder.relax, inputs['relax'], inputs, code, structure, files, options)
        fill_cp2k_namespace(
            builder.single_point,
            inputs['single_point'],
            inputs,
            code,
            structure,
            files,
            options,
            edit=lambda parameters: _add_analysis_prints(parameters, n_electrons, low, high, labels),
        )
        return builder


def _add_analysis_prints(parameters: dict, n_electrons: int, low: int, high: int, labels) -> None:
    """The &MO window, ADDED_MOS and the per-domain &LDOS lists of the final single point."""
    dft = parameters['FORCE_EVAL']['DFT']
    homo = n_electrons // 2
    dft['SCF']['ADDED_MOS'] = max(int(dft['SCF'].get('ADDED_MOS', 0)), high - homo)
    dft['PRINT']['MO']['MO_INDEX_RANGE'] = f'{low} {high}'
    dft['PRINT']['PDOS']['NLUMO'] = high - homo
    if labels is not None and 'domain' in labels.get_arraynames():
        import numpy as np

        domains = labels.get_array('domain')
        lists = []
        for value in np.unique(domains):
            atoms = np.flatnonzero(domains == value) + 1  # CP2K counts atoms from 1
            # one LIST keyword per 40 atoms keeps CP2K's input lines short
            lists.append({'LIST': [' '.join(map(str, atoms[i : i + 40])) for i in range(0, atoms.size, 40)]})
        dft['PRINT']['PDOS']['LDOS'] = lists


def _drop_diagonalisation_under_ot(parameters: dict) -> None:
    """An OT step inherits the single point's diagonalisation settings: remove what OT does not take."""
    scf = parameters.get('FORCE_EVAL', {}).get('DFT', {}).get('SCF', {})
    if uses_ot(parameters):
        for key in ('DIAGONALIZATION', 'MIXING', 'SMEAR'):
            scf.pop(key, None)
        scf['ADDED_MOS'] = 0


def _validate_ipr_method(value, _ctx=None):
    from aiida_nanohetero.analysis import IPR_METHODS

    if value.value not in IPR_METHODS:
        return f'ipr_method "{value.value}" is unknown: choose one of {", ".join(IPR_METHODS)}'
    return None


def _last_calculation(workchain) -> orm.CalcJobNode:
    calcs = [node for node in workchain.called if isinstance(node, orm.CalcJobNode)]
    return max(calcs, key=lambda node: node.ctime)
