"""Submit the paper-size campaign (Br, Cl, I) to a cluster computer.

Run it with ``verdi -p PROFILE run examples/submit_paper_campaign.py``.

Before: a profile with a broker and a running daemon, a computer for the cluster and a CP2K code on it
(``nanohetero setup``), and the code's label below. Follow it with ``nanohetero status <pk>`` or
``verdi process list``.
"""

from aiida import orm
from aiida.engine import submit

from aiida_nanohetero.workflows.campaign import HeterostructureCampaignWorkChain

CODE = 'cp2k@cluster'  # the CP2K code on the cluster computer (`verdi code list`)

builder = HeterostructureCampaignWorkChain.get_builder()
builder.protocol = orm.Str('paper')
builder.halides = orm.List(['Br', 'Cl', 'I'])
builder.code = orm.load_code(CODE)
# Scheduler resources of each CP2K job (merged over the protocol's defaults).
builder.options = orm.Dict(
    {
        'resources': {'num_machines': 4, 'num_mpiprocs_per_machine': 128},
        'max_wallclock_seconds': 24 * 3600,
    }
)
node = submit(builder)
print(f'Submitted HeterostructureCampaignWorkChain<{node.pk}>: nanohetero status {node.pk}')
