"""Every fact class the recorder produces, whichever API it describes: one store table each
(analytics.schema). The parsers own their facts (proxy.assistants.facts, proxy.responses.facts);
this is the one list the store is built from."""

from __future__ import annotations

from proxy.assistants.facts import FACT_TYPES as ASSISTANTS_FACT_TYPES
from proxy.assistants.facts import Fact as AssistantsFact
from proxy.responses.facts import RESPONSES_FACT_TYPES, ResponsesFact

FACT_TYPES: tuple[type, ...] = (*ASSISTANTS_FACT_TYPES, *RESPONSES_FACT_TYPES)

Fact = AssistantsFact | ResponsesFact
