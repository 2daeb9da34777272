"""loadgen: load generator and capacity planner for Amazon Bedrock LLM traffic."""

from loadgen._version import __version__ as __version__
