"""One module per kind of manifest route (list, record, form, delete, api, export, import, bulk,
action, module page), each a handler factory; `routes` maps every kind to its factory."""
