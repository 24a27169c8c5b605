"""The recorder process: journal reader, recorder loop and what it feeds (see `recorder` and `process`)."""
