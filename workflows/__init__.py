"""AiiDA work chains of aiida-nanohetero and their YAML protocols.

``Cp2kRestartWorkChain`` (``nanohetero.cp2k``), ``SinglePointWorkChain`` (``nanohetero.single_point``),
``RelaxAndSinglePointWorkChain`` (``nanohetero.relax_single_point``) and ``HeterostructureCampaignWorkChain``
(``nanohetero.campaign``); import them from their modules, or load them with ``WorkflowFactory``.
"""
