"""Band edges, gaps, domain fractions and alignment classes on constructed inputs; the ``analyse`` command on
real CP2K runs."""

from __future__ import annotations

import csv
import json
import pathlib
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from aiida_nanohetero.analysis import (
    BandEdgeNotFoundError,
    OrbitalWindowError,
    classify_alignment,
    summarise_orbitals,
)
from aiida_nanohetero.cli.analyse import analyse

DATA = pathlib.Path(__file__).parent / 'data' / 'cp2k'
DOMAINS = ['chalcohalide', 'interface', 'perovskite']


def window(**overrides):
    """A constructed heterostructure window: delocalised bands, one trap state on each side of the gap at the
    interface, the VB edge in the chalcohalide, the CB edge spread over both domains."""
    data = {
        'indices': np.arange(101, 109),
        'energies_ev': np.array([-6.0, -5.5, -5.2, -4.6, -3.1, -2.9, -2.5, -2.0]),
        'occupations': np.array([2.0, 2, 2, 2, 0, 0, 0, 0]),
        'ipr': np.array([0.004, 0.006, 0.005, 0.2, 0.3, 0.008, 0.007, 0.006]),
        'domain_contributions': np.array(
            [
                # chalcohalide, interface, perovskite
                [0.5, 0.3, 0.2],
                [0.4, 0.2, 0.4],
                [0.9, 0.05, 0.05],  # VB edge
                [0.1, 0.8, 0.1],  # occupied trap at the interface
                [0.3, 0.6, 0.1],  # empty trap at the interface
                [0.45, 0.1, 0.45],  # CB edge, spread
                [0.2, 0.1, 0.7],
                [0.3, 0.1, 0.6],
            ]
        ).T,
        'domains': DOMAINS,
    }
    data.update(overrides)
    return data


def test_edges_gaps_and_interface_states():
    summary = summarise_orbitals(**window())
    assert summary['homo']['mo'] == 104 and summary['lumo']['mo'] == 105
    assert summary['gap_ev'] == pytest.approx(1.5)
    assert summary['vb_edge']['mo'] == 103 and summary['cb_edge']['mo'] == 106
    assert summary['gap_filtered_ev'] == pytest.approx(2.3)
    assert summary['in_gap_states_ev'] == pytest.approx([-4.6, -3.1])
    assert summary['n_interface_in_gap_states'] == 2
    assert summary['vb_edge_domain_fractions']['chalcohalide'] == pytest.approx(0.9)
    assert summary['alignment'] == 'quasi-type II'
    json.dumps(summary)  # storable as a Dict node


def test_alignment_from_homo_lumo_when_no_state_passes_the_filter():
    # a cluster of a few dozen atoms: every IPR above the threshold
    summary = summarise_orbitals(**window(), threshold=0.001, strict=False)
    assert summary['vb_edge'] is None and summary['gap_filtered_ev'] is None
    # HOMO (MO 104) 80 % on the interface layer, 10 % on each core domain: spread; LUMO (MO 105) 60 % on it,
    # chalcohalide 0.3 / (0.3 + 0.1) = 0.75 of the core: in the chalcohalide
    assert summary['homo_domain_fractions'] == pytest.approx({'chalcohalide': 0.1, 'perovskite': 0.1, 'interface': 0.8})
    assert summary['alignment'] == 'quasi-type II'
    assert summary['alignment_basis'] == 'HOMO/LUMO'
    assert any('alignment from the HOMO and LUMO' in w for w in summary['warnings'])
    assert summarise_orbitals(**window())['alignment_basis'] == 'IPR-filtered band edges'


def test_threshold_changes_the_edges():
    summary = summarise_orbitals(**window(), threshold=0.5)
    assert summary['vb_edge']['mo'] == 104 and summary['cb_edge']['mo'] == 105
    assert summary['gap_filtered_ev'] == pytest.approx(summary['gap_ev'])
    assert summary['n_in_gap_states'] == 0


def test_degenerate_edge_averages_its_members():
    data = window()
    data['energies_ev'][1] = data['energies_ev'][2] - 1e-4  # MO 102 degenerate with the VB edge
    data['energies_ev'][0] = -6.5
    summary = summarise_orbitals(**data)
    expected = (data['domain_contributions'][0, 1] + data['domain_contributions'][0, 2]) / 2
    assert summary['vb_edge_domain_fractions']['chalcohalide'] == pytest.approx(expected)


@pytest.mark.parametrize(
    ('vb', 'cb', 'expected'),
    [
        ({'perovskite': 0.9, 'chalcohalide': 0.1}, {'perovskite': 0.8, 'chalcohalide': 0.2}, 'type I'),
        ({'perovskite': 0.1, 'chalcohalide': 0.9}, {'perovskite': 0.85, 'chalcohalide': 0.15}, 'type II'),
        ({'perovskite': 0.05, 'chalcohalide': 0.95}, {'perovskite': 0.5, 'chalcohalide': 0.5}, 'quasi-type II'),
        ({'perovskite': 0.5, 'chalcohalide': 0.5}, {'perovskite': 0.95, 'chalcohalide': 0.05}, 'quasi-type II'),
        ({'perovskite': 0.4, 'chalcohalide': 0.6}, {'perovskite': 0.6, 'chalcohalide': 0.4}, 'delocalised'),
        # the interface share is left out: 0.35 / (0.35 + 0.05) = 0.875 in the chalcohalide
        ({'perovskite': 0.05, 'chalcohalide': 0.35, 'interface': 0.6}, {'perovskite': 0.9}, 'type II'),
    ],
)
def test_alignment_classes(vb, cb, expected):
    assert classify_alignment(vb, cb, ('perovskite', 'chalcohalide')) == expected


def test_window_without_homo_or_lumo_is_a_named_error():
    data = window()
    with pytest.raises(OrbitalWindowError, match='LUMO'):
        summarise_orbitals(**{**data, 'occupations': np.full(8, 2.0)})
    with pytest.raises(OrbitalWindowError, match='HOMO'):
        summarise_orbitals(**{**data, 'occupations': np.zeros(8)})


def test_missing_band_edge():
    data = window(ipr=np.full(8, 0.2))
    with pytest.raises(BandEdgeNotFoundError, match=r'IPR < 0\.03'):
        summarise_orbitals(**data)
    summary = summarise_orbitals(**data, strict=False)
    assert summary['vb_edge'] is None and len(summary['warnings']) == 3  # two missing edges, the fallback alignment
    assert summary['gap_ev'] == pytest.approx(1.5)


@settings(max_examples=50, deadline=None)
@given(
    ipr=st.lists(st.floats(0.0, 1.0), min_size=8, max_size=8),
    n_occupied=st.integers(1, 7),
)
def test_filtered_gap_never_smaller_than_raw_gap(ipr, n_occupied):
    ipr = np.array(ipr)
    occupations = np.where(np.arange(8) < n_occupied, 2.0, 0.0)
    data = window(ipr=ipr, occupations=occupations)
    summary = summarise_orbitals(**data, strict=False)
    if summary['vb_edge'] is None:
        assert ipr[:n_occupied].min() >= 0.03 or ipr[n_occupied:].min() >= 0.03
        return
    assert summary['gap_filtered_ev'] >= summary['gap_ev'] - 1e-12
    assert summary['vb_edge']['ipr'] < 0.03 and summary['cb_edge']['ipr'] < 0.03


# ---------------------------------------------------------------------------------------------------- the CLI


def test_analyse_command_on_a_real_run(tmp_path):
    out = tmp_path / 'table.csv'
    result = CliRunner().invoke(
        analyse, [str(DATA / 'cs4pbbr6'), '--csv', str(out), '--domain', 'octahedron=1-7', '--domain', 'cs=8-11']
    )
    assert result.exit_code == 0, result.output
    assert 'cross-check against CP2K PDOS' in result.output
    deviation = float(result.output.split('max |deviation| = ')[1].split()[0])
    assert deviation < 1e-4
    assert 'HOMO  MO     41' in result.output
    rows = list(csv.DictReader(out.open()))
    assert [int(r['mo']) for r in rows] == list(range(30, 53))
    assert {'Br', 'Cs', 'Pb', 'domain:cs', 'domain:octahedron'} <= set(rows[0])
    for row in rows:
        assert float(row['Br']) + float(row['Cs']) + float(row['Pb']) == pytest.approx(1.0)


def test_analyse_command_json_and_methods():
    for method in ('paper', 'lowdin', 'mulliken'):
        result = CliRunner().invoke(analyse, [str(DATA / 'h2o'), '--project', 'h2o', '--method', method, '--json'])
        assert result.exit_code == 0, result.output
        payload = json.loads(result.output)
        assert payload['summary']['method'] == method
        assert payload['summary']['homo']['mo'] == 4
        assert len(payload['orbitals']) == 8


def test_analyse_command_reports_bad_runs(tmp_path):
    run = tmp_path / 'run'
    shutil.copytree(DATA / 'h2o', run)
    (run / 'h2o-overlap_bin-S_SPIN_1-1_0.csr').unlink()
    result = CliRunner().invoke(analyse, [str(run)])
    assert result.exit_code != 0 and 'S_CSR_WRITE' in result.output
    shutil.copy(DATA / 'cs4pbbr6' / 'cube-overlap-S_SPIN_1-1_0.csr', run / 'h2o-overlap_bin-S_SPIN_1-1_0.csr')
    result = CliRunner().invoke(analyse, [str(run)])
    assert result.exit_code == 1 and '147' in result.output  # AO counts of the two files differ
    result = CliRunner().invoke(analyse, [str(DATA / 'h2o'), '--method', 'nope'])
    assert result.exit_code == 2
    uks = tmp_path / 'uks'
    shutil.copytree(DATA / 'h2o_uks', uks)
    shutil.copy(DATA / 'h2o' / 'h2o-overlap_bin-S_SPIN_1-1_0.csr', uks / 'h2ouks-overlap_bin-S_SPIN_1-1_0.csr')
    result = CliRunner().invoke(analyse, [str(uks)])
    assert result.exit_code == 1 and 'spin-polarised' in result.output


def test_analyse_command_routes_agree_on_a_real_run():
    """The three S^½ routes offered by ``--route`` give the same IPRs on the real Cs4PbBr6 run."""
    ipr = {}
    for route in ('dense', 'chebyshev', 'shift-invert'):
        result = CliRunner().invoke(analyse, [str(DATA / 'cs4pbbr6'), '--route', route, '--json'])
        assert result.exit_code == 0, (route, result.output)
        ipr[route] = np.array([row['ipr'] for row in json.loads(result.output)['orbitals']])
    np.testing.assert_allclose(ipr['chebyshev'], ipr['dense'], atol=1e-6)
    # shift-invert works in float32 by default: agreement to single precision
    np.testing.assert_allclose(ipr['shift-invert'], ipr['dense'], atol=1e-4)
