"""Support tickets (rows 4-6): the ticket, reading a support tool's export, first-response evaluation."""
from .evaluate import TicketOutcome, evaluate_ticket, figures_of, outcomes_of, summarize, tally
from .importer import MAX_FILE_BYTES, TicketFileError, parse_export
from .model import FIELDS, REQUIRED, Ticket

__all__ = ["FIELDS", "MAX_FILE_BYTES", "REQUIRED", "Ticket", "TicketFileError", "TicketOutcome", "evaluate_ticket",
           "figures_of", "outcomes_of", "parse_export", "summarize", "tally"]
