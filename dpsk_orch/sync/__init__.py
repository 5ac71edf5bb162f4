"""The main job: snapshot RuckusONE, plan the changes (pure), apply them."""
