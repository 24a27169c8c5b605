"""Pure parsing of the Responses and Conversations APIs: exchange -> facts (runs in the recorder)."""
