"""Study E (seed 000): one exponential neuron added to a network (docs/exp_neuron.md): the four protocols'
tables (:mod:`.tables`) beside the seed's values (:mod:`.seed`)."""
