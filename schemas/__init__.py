"""marshmallow schemas shared by the API (and the forms): what comes in, what goes out."""
