"""The water network twin: EPANET networks as Smart Data Models entities, simulated,
stressed by scenarios and measured by KPIs."""
